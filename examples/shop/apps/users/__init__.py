"""users: demo login that issues ES512 JWTs, and the JWKS to check them."""
