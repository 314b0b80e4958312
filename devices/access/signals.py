"""Tell every server process at once when a user's access changed (logout, deactivation,
token revoked), so that user's open sockets re-check now rather than at the next review."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from devices.channel_layer import messages as m

from .models import ApiToken

log = logging.getLogger(__name__)


def access_changed_announce(*, user_id: int | None) -> None:
    """Runs in a web request (a thread): rare, so the cost of async_to_sync is fine here."""
    if user_id is None:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(m.ACCESS_GROUP, {"type": m.ACCESS_CHANGED, "user_id": user_id})
    except Exception:  # noqa: BLE001 - the periodic review still catches the change
        log.exception("announcing an access change of user %s failed", user_id)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **_: Any) -> None:
    access_changed_announce(user_id=getattr(user, "pk", None))


@receiver(post_save, sender=get_user_model())
def _user_saved(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    if not created:
        access_changed_announce(user_id=instance.pk)


@receiver(post_save, sender=ApiToken)
def _token_saved(sender: Any, instance: ApiToken, created: bool, **_: Any) -> None:
    if not created:
        access_changed_announce(user_id=instance.user_id)


@receiver(m2m_changed, sender=get_user_model().user_permissions.through)
@receiver(m2m_changed, sender=get_user_model().groups.through)
def _rights_changed(sender: Any, instance: Any, action: str, **_: Any) -> None:
    if action.startswith("post_") and isinstance(instance, get_user_model()):
        access_changed_announce(user_id=instance.pk)
