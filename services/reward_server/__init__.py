"""harmo reward server: hybrid, multi-aspect reward scoring.

Importing this package stays light (pydantic only) so that clients can import
``harmo.protocol`` without the server's dependencies.
"""
