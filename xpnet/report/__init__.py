"""What a person sees of a run: console progress and plots."""
