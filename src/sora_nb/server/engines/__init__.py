"""What makes a video: the seam between the server (store, routes, dialects) and whatever renders the clip.

Today there is one engine, `synthetic`: deterministic, visibly synthetic "local preview" clips rendered on this
machine.  A relay to an upstream service and real open-weights models come later, behind the same seam; the
store, routes and dialects do not change when an engine is added.
"""
