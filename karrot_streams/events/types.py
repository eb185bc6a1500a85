"""Event types, the topic each belongs to, and the payload record each carries."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    USER_CREATED = "USER_CREATED"
    ITEM_CREATED = "ITEM_CREATED"
    PAYMENT_REQUESTED = "PAYMENT_REQUESTED"
    PAYMENT_COMPLETED = "PAYMENT_COMPLETED"
    CHAT_MESSAGE_SENT = "CHAT_MESSAGE_SENT"


#: The topics upstream services publish to (the contract's input topics).
INPUT_TOPICS: tuple[str, ...] = ("user-events", "item-events", "payment-events", "chat-events")

NAMESPACE = "com.karrot.events"

TOPIC_OF: dict[EventType, str] = {
    EventType.USER_CREATED: "user-events",
    EventType.ITEM_CREATED: "item-events",
    EventType.PAYMENT_REQUESTED: "payment-events",
    EventType.PAYMENT_COMPLETED: "payment-events",
    EventType.CHAT_MESSAGE_SENT: "chat-events",
}

#: Full Avro name of the payload record each event type must carry.
PAYLOAD_RECORD_OF: dict[EventType, str] = {
    EventType.USER_CREATED: f"{NAMESPACE}.UserCreated",
    EventType.ITEM_CREATED: f"{NAMESPACE}.ItemCreated",
    EventType.PAYMENT_REQUESTED: f"{NAMESPACE}.Payment",
    EventType.PAYMENT_COMPLETED: f"{NAMESPACE}.Payment",
    EventType.CHAT_MESSAGE_SENT: f"{NAMESPACE}.ChatMessage",
}

#: Full Avro name of the envelope record written to each input topic.
ENVELOPE_RECORD_OF: dict[str, str] = {
    "user-events": f"{NAMESPACE}.UserEvent",
    "item-events": f"{NAMESPACE}.ItemEvent",
    "payment-events": f"{NAMESPACE}.PaymentEvent",
    "chat-events": f"{NAMESPACE}.ChatEvent",
}

#: Payload fields and their JSON/Avro kinds: "str" (required, non-blank), "str?" (optional), "int".
PAYLOAD_FIELDS: dict[str, dict[str, str]] = {
    f"{NAMESPACE}.UserCreated": {
        "userId": "str",
        "email": "str",
        "nickname": "str",
        "region": "str?",
    },
    f"{NAMESPACE}.ItemCreated": {
        "itemId": "str",
        "sellerId": "str",
        "title": "str",
        "price": "int",
        "category": "str",
        "region": "str?",
    },
    f"{NAMESPACE}.Payment": {
        "paymentId": "str",
        "buyerId": "str",
        "sellerId": "str",
        "itemId": "str",
        "amount": "int",
    },
    f"{NAMESPACE}.ChatMessage": {"chatRoomId": "str", "senderId": "str", "message": "str"},
}


def enriched_topic(topic: str) -> str:
    return f"enriched.{topic}"


def dead_letter_topic(topic: str) -> str:
    return f"dlq.{topic}"


def value_subject(topic: str) -> str:
    """TopicNameStrategy: the subject that holds a topic's value schemas."""
    return f"{topic}-value"
