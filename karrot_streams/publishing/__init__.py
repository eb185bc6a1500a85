"""Publishing events from outside the stream: store, produce, mark PUBLISHED; one or a batch."""
