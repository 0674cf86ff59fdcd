"""What the HTTP API and the console share: request dependencies, the lifecycle stream
hub, page splitting and the app's metrics. Neither courier.api nor courier.console is
imported here; both import this."""
