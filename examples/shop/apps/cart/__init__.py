"""cart: each user's shopping cart, in memory."""
