"""Predictor: per request and per candidate model, output-length quantiles and the chance of a strong-enough answer."""
