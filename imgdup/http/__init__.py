"""HTTP requests -> the API: an app factory, dependencies, one router per resource, the admin page."""
