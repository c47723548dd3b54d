"""reviews: what readers wrote about each book; v2 and v3 add stars from ratings."""
