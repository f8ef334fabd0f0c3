"""The standard library: common losses written in the language (`lossdsl.std`)."""
