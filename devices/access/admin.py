"""Admin for access rules (with a dry run), API tokens (key shown once) and the audit log."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from devices.admin_readonly import ReadOnlyAdmin

from .models import AccessRule, ApiToken, AuditEntry
from .rules import check_pattern, parse_networks
from .tokens import api_token_issue, api_token_revoke


class AccessRuleForm(forms.ModelForm):
    class Meta:
        model = AccessRule
        fields = ["name", "pattern", "syntax", "target", "level", "users", "groups", "networks", "enabled", "note"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        why = check_pattern(data.get("pattern") or "", data.get("syntax") or "glob")
        if why:
            raise ValidationError({"pattern": why})
        try:
            parse_networks(data.get("networks") or "")
        except ValueError as exc:
            raise ValidationError({"networks": f"Not a network or address: {exc}"}) from None
        return data


@admin.register(AccessRule)
class AccessRuleAdmin(admin.ModelAdmin):
    """Edits apply to every socket within a few seconds (rules are read through a short cache)."""

    form = AccessRuleForm
    change_list_template = "admin/devices/accessrule_list.html"
    list_display = ["name", "pattern", "syntax", "target", "level", "networks", "enabled", "changed_at"]
    list_filter = ["enabled", "level", "target"]
    search_fields = ["name", "pattern", "note"]
    filter_horizontal = ["users", "groups"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["label", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "user"]
    search_fields = ["label", "prefix", "user__username"]
    fields = ["label", "user", "expires_at", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        key = api_token_issue(token=obj, created_by=request.user)
        messages.warning(request, f"The key of token '{obj.label}' is shown only now; copy it: {key}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit log refers to tokens by label

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s)")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """Read-only: nobody edits or deletes the record of writes."""

    list_display = ["at", "username", "token", "client", "path", "target", "signal", "value_requested",
                    "outcome", "rule", "duration_s"]
    list_filter = ["outcome", "path", "at"]
    search_fields = ["target", "signal", "username", "token", "client"]
    date_hierarchy = "at"
    actions = ["export_csv"]

    @admin.action(description="Export the selected entries as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="ophydsite-audit.csv"'
        columns = ["at", "username", "token", "client", "origin", "path", "target", "signal", "value_before",
                   "value_requested", "readback_after", "outcome", "message", "duration_s", "rule"]
        writer = csv.writer(response)
        writer.writerow(columns)
        for entry in queryset.order_by("at"):
            writer.writerow([getattr(entry, c) for c in columns])
        return response
