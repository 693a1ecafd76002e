"""Jinja templates of the reinforced dataset card (installed as ``hf_reinforce.dataset_cards``)."""
