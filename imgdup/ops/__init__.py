"""Operating the stack: embedded servers, the supervisor, replay, the demo and the bad-input corpus."""
