"""Charts drawn in plain Python (SVG), no plotting library."""
