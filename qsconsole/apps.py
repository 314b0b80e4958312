from django.apps import AppConfig


class QsConsoleConfig(AppConfig):
    name = "qsconsole"
    verbose_name = "Queue Server console"
