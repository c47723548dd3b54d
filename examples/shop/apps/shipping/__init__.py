"""shipping: ships paid orders, told by events."""
