"""harmo reward server: hybrid, multi-aspect reward scoring.

Importing this package stays light (pydantic only) so that clients can import
``services.reward_server.schema`` without the server's dependencies.
"""
