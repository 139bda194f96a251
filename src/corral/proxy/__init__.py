"""Who the client is: the proxies we trust, and what they may tell us about the client."""
