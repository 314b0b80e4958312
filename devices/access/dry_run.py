"""The admin's dry run: "may user U read/write name N from address A, and which rule decided?"."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .rules import QSERVER, Level, Principal, decide
from .selectors import access_rules_load, principal_for
from .settings import current_policy


class DryRunForm(forms.Form):
    username = forms.CharField(required=False, help_text="Empty: an anonymous client")
    name = forms.CharField(help_text="A PV name, a device name, or a Queue Server action such as queue:add, "
                                     "run:pause or environment:open")
    kind = forms.ChoiceField(choices=[("pv", "PV"), ("device", "device"), (QSERVER, "Queue Server action")])
    address = forms.GenericIPAddressField(required=False, help_text="The client's IP address")

    def clean_username(self) -> str:
        name = self.cleaned_data["username"].strip()
        if name and not get_user_model().objects.filter(username=name).exists():
            raise forms.ValidationError(f"No user {name!r}")
        return name


@staff_member_required
def access_dry_run(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("devices.view_accessrule"):
        return HttpResponse("Viewing access rules needs the 'Can view access rule' permission", status=403)
    form = DryRunForm(request.GET or None)
    result = None
    if form.is_valid():
        data = form.cleaned_data
        principal = Principal()
        if data["username"]:
            principal = principal_for(get_user_model().objects.get(username=data["username"]))
        rules = access_rules_load()
        name, kind, address = data["name"], data["kind"], data["address"] or None
        decision = decide(rules, principal=principal, name=name, kind=kind, address=address,
                          policy=current_policy())
        matching = [r for r in rules if r.matches(name=name, kind=kind, principal=principal, address=address)]
        result = {"decision": decision, "matching": matching, "principal": principal,
                  # a Queue Server action is done or not: "read" would say nothing useful
                  "verdict": ("may act" if decision.level >= Level.WRITE else "may not act") if kind == QSERVER
                  else decision.level.name.lower()}
    context = {"form": form, "result": result, "title": "Access dry run", "has_permission": True,
               "site_header": admin.site.site_header,
               "site_title": admin.site.site_title, "auth_required": settings.OAS.auth_required,
               "anonymous_writes": settings.OAS.anonymous_writes}
    return render(request, "admin/devices/access_dry_run.html", context)
