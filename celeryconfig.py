"""Celery settings for running from a checkout: a re-export, not installed.

The project's Celery configuration is ``credits.tasks.celeryconfig``, which
``credits.tasks.app`` loads itself; nothing needs this file. It stays at the
repository root only so that a bare ``celery worker`` started in the checkout
(which looks for a module named ``celeryconfig``) gets the same settings.
The package never installs it: a top-level ``celeryconfig`` in site-packages
would shadow a user's own, or be picked up by another Celery app.
"""

from credits.tasks.celeryconfig import *  # noqa: F403
