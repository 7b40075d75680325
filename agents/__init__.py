"""Vision-language agents that plan an edit and judge its result."""
