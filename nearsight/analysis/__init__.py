"""Error metrics and plots of models against DFT references."""
