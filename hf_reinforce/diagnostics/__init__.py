"""Looking at a reinforced dataset: the teachers' accuracy and replayed views of stored augmentations."""
