"""Dead letters after the fact: read them, select them, and redrive them to their topic once."""
