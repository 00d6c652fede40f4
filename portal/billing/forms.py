from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.validators import Optional

from portal.forms import DayField, choices
from portal.i18n import _l
from portal.models import EntryKind

KIND_CHOICES = choices(
    [("", _l("All kinds"))]
    + [(k.value, _l(k.value.replace("_", " ").capitalize())) for k in EntryKind]
)


class HistoryFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter, it changes nothing

    kind = SelectField(_l("Kind"), choices=KIND_CHOICES, validators=[Optional()])
    date_from = DayField(_l("From"), validators=[Optional()])
    date_to = DayField(_l("To"), validators=[Optional()])

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            from wtforms.validators import ValidationError

            raise ValidationError(_l("The end date must not be before the start date."))
