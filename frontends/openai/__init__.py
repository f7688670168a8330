"""The OpenAI-compatible chat API (/v1/chat/completions, /v1/models): a frontend of the hub (docs/openai.md)."""
