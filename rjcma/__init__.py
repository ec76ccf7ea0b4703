"""The rjcma application: the ``rjcma`` command, prediction on any video, the demo generator."""
