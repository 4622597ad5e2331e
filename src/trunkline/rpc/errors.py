"""How handlers say no: an ErrorCode and one human sentence, mapped to the wire by the dispatcher."""

from trunkline.enums import ErrorCode


class RpcFailure(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotAvailable(RpcFailure):
    """A method whose engine arrives with a later release of the gateway."""

    def __init__(self, method: str) -> None:
        super().__init__(ErrorCode.ERR_INTERNAL_ERROR, f"not available yet: {method}")


def reset_code(code: ErrorCode) -> int:
    """QUIC application error for a failed response that has no error field (§4)."""
    return 0x100 + int(code)
