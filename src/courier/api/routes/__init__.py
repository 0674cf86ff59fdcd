"""One router per resource, registered by create_app."""
