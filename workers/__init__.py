"""Worker entrypoints: which workflows and activities serve which task queue."""
