"""Router: the OpenAI-compatible proxy, routing policies, and the request service between them."""
