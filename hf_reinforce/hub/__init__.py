"""The Hub side of a reinforced folder: its dataset card, publishing it in one commit, joining a reinforcement-only
dataset back onto its source."""
