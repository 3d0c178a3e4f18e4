"""What a person sees in the terminal running ``qcraft run``: a live progress bar,
known-harmless messages kept out of the way (in a log file beside the output), and a
short summary at the end. Used by the CLI only."""
