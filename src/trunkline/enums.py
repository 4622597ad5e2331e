"""The shared vocabulary of the TeleQuick contract.

These enumerations are the words both the wire codec and the call domain speak, so they live here,
outside both: the domain can say ``DialplanAction.PARK`` without importing a codec, and the codec can
encode it without importing the domain. Values are fixed by the seeds; never renumber.
"""

from enum import IntEnum


class ErrorCode(IntEnum):
    SUCCESS = 0
    ERR_INVALID_TRUNK = 1
    ERR_INVALID_DESTINATION = 2
    ERR_RATE_LIMITED = 3
    ERR_CIRCUIT_BREAKER = 4
    ERR_INTERNAL_ERROR = 5
    ERR_VALIDATION_FAILED = 6
    ERR_UNAUTHORIZED = 7


class DialplanAction(IntEnum):
    HANGUP = 0
    PARK = 1
    MUSIC_ON_HOLD = 2
    PLAYBACK = 3
    UNPARK_AND_BRIDGE = 4
    ANSWER = 5
    AI_BIDIRECTIONAL_STREAM = 6
    TRANSFER = 7
    MUTE = 8
    UNMUTE = 9
    HOLD = 10
    UNHOLD = 11
    SEND_DTMF = 12


class InboundRule(IntEnum):
    REJECT = 0
    PLAY_AND_HANGUP = 1
    NOTIFY_AND_HANGUP = 2
    HANDLE_AI = 3


class EventType(IntEnum):
    UNKNOWN = 0
    CHANNEL_CREATE = 1
    CHANNEL_ANSWER = 2
    CHANNEL_HANGUP_COMPLETE = 3
    CHANNEL_HOLD = 4
    CHANNEL_RESUME = 5
