"""The LSTMVis-compatible API under /api/v2 (info, context, search), for existing clients."""
