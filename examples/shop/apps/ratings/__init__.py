"""ratings: star ratings (1 to 5) of each book, by reviewer."""
