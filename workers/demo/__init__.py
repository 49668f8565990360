"""The demo project: a small LSTM trained on the nested-parenthesis language."""
