"""Admin for startup files (superusers only) and a read-only list of devices."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from devices.startup.services import startup_file_check, startup_file_save

from .admin_readonly import ReadOnlyAdmin
from .models import AllowedOrigin, DeviceRecord, QserverRegistryState, StartupFile, StartupFileVersion

# The admin index links the live status page (devices/status/views.py).
admin.site.index_template = "admin/status_index.html"


class StartupFileForm(forms.ModelForm):
    upload = forms.FileField(required=False, help_text="Or upload a .py file instead of editing the text")

    class Meta:
        model = StartupFile
        fields = ["name", "enabled", "order", "content", "upload"]
        widgets = {"content": forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false",
                                                    "style": "font-family: monospace"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["content"].required = False  # an upload may give it
        self.fields["content"].strip = False  # code: keep its whitespace as written
        self.fields["name"].required = False  # an upload may give it

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload = data.get("upload")
        if upload is not None:
            raw = upload.read(settings.OAS.startup_max_bytes + 1)
            try:
                data["content"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError({"upload": "The uploaded file is not UTF-8 text"}) from None
            if not data.get("name"):
                data["name"] = upload.name
                self.instance.name = upload.name
        if not data.get("content"):
            raise ValidationError({"content": "Give the file's text or upload a file"})
        startup_file_check(name=data.get("name") or "", content=data["content"],
                           max_bytes=settings.OAS.startup_max_bytes)
        self.instance.content = data["content"]
        return data


class VersionInline(admin.TabularInline):
    model = StartupFileVersion
    fields = ["version", "changed_by", "changed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-version"]
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SuperuserOnly:
    """Startup files are code the server runs: only superusers see or touch them."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    has_add_permission = has_view_permission  # type: ignore[assignment]
    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission


@admin.register(StartupFile)
class StartupFileAdmin(SuperuserOnly, admin.ModelAdmin):
    form = StartupFileForm
    change_list_template = "admin/devices/reload_button.html"
    list_display = ["name", "enabled", "order", "last_load_status", "last_loaded_at", "changed_by", "changed_at"]
    list_filter = ["enabled", "last_load_status"]
    readonly_fields = ["last_load_status", "last_loaded_at", "last_load_error", "devices", "changed_by",
                       "changed_at"]
    inlines = [VersionInline]

    def save_model(self, request: HttpRequest, obj: StartupFile, form: Any, change: bool) -> None:
        startup_file_save(file=obj, user=request.user, max_bytes=settings.OAS.startup_max_bytes)


@admin.register(StartupFileVersion)
class StartupFileVersionAdmin(ReadOnlyAdmin, SuperuserOnly, admin.ModelAdmin):
    list_display = ["file_name", "version", "changed_by", "changed_at"]
    list_filter = ["file_name"]
    readonly_fields = ["file", "file_name", "version", "content", "changed_by", "changed_at"]



@admin.register(DeviceRecord)
class DeviceRecordAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """Read-only: the registry as the bridge last loaded it, with live connection state."""

    change_list_template = "admin/devices/device_list.html"
    list_display = ["name", "device_class", "library", "origin_kind", "qserver_allowed", "source", "connected",
                    "state_at"]
    list_filter = ["connected", "library", "origin_kind", "qserver_allowed", "device_class"]
    ordering = ["name"]
    search_fields = ["name", "device_class", "source"]
    fields = ["name", "device_class", "library", "origin_kind", "qserver_allowed", "source", "connected", "state_at",
              "component_tree", "updated_at"]
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """With OAS_QSERVER_DEVICES on, say how the last ask of the Queue Server went."""
        extra = dict(extra_context or {})
        if settings.OAS.qserver_devices:
            extra["qserver_state"] = QserverRegistryState.objects.filter(pk=1).first()
            extra["qserver_mode"] = settings.OAS.qserver_devices
        return super().changelist_view(request, extra_context=extra)

    @admin.display(description="Components")
    def component_tree(self, obj: DeviceRecord) -> SafeString:
        return _tree_html(obj.components if isinstance(obj.components, list) else [])


def _tree_html(nodes: list[Any]) -> SafeString:
    """Nested list of components: attribute, ophyd name, class, PV."""
    if not nodes:
        return format_html("<em>{}</em>", "no components")
    items = format_html_join("", "<li><code>{}</code> {} <small>{}{}</small>{}</li>", (
        (n.get("attr", "?"), n.get("name", ""), n.get("class", ""),
         f" · {n['pv']}" if n.get("pv") else "", _tree_html(n["children"]) if n.get("children") else "")
        for n in nodes if isinstance(n, dict)))
    return format_html('<ul class="component-tree">{}</ul>', items)


@admin.register(QserverRegistryState)
class QserverRegistryStateAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """Read-only: what the bridge last heard from the Queue Server about its devices."""

    list_display = ["__str__", "user_group", "ok", "asked_at", "last_good_at"]
    readonly_fields = ["mode", "user_group", "ok", "error", "how", "asked_at", "last_good_at", "allowed",
                       "not_allowed", "clashes", "files"]
    fields = readonly_fields


@admin.register(AllowedOrigin)
class AllowedOriginAdmin(admin.ModelAdmin):
    """Origins take effect on the next WebSocket handshake (within a few seconds), no restart."""

    list_display = ["origin", "note", "created_at"]
    search_fields = ["origin", "note"]


from .access import admin as access_admin  # noqa: E402,F401 - registers the access admin classes
