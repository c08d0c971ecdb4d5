"""The master's parts that are not the actor itself: event stream, log store, worker registry,
AOF records and views. The actor (``titan_actors.actors.master``) composes them."""
