"""The development server: a reloader that keeps the socket and restarts the app on change."""
