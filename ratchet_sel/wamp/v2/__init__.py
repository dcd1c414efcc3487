"""WAMP v2 (Basic Profile and parts of the Advanced Profile): serializers, sessions and the router."""
