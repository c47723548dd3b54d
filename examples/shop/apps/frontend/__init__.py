"""frontend: the shop's web pages, composed from catalog, reviews, cart, users, payment."""
