"""`llmkit eval ...` and `llmkit cost`, registered through `llmkit_register_commands`."""
