"""Three small bots on aiomasto: ``python -m examples.bots.reply_bot`` (and ``follow_back``,
``image_bot``). Each runs against a real instance (``--instance URL``, the token in
``MASTODON_TOKEN``) or, with ``--demo``, against a FakeMastodon started in the process."""
