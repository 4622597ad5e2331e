"""Refusals the domain reports, carrying the TeleQuick ErrorCode each maps to."""

from trunkline.enums import ErrorCode


class CallError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
