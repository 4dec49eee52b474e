"""The engine: a layer's exact event loop (``layer``), networks of layers (``network``) and the event adjoint
(``adjoint``); ``_event_loop`` is the loop's internal machinery."""
