"""Project-wide pieces every package uses: the error tree, JSON file reading and writing."""
