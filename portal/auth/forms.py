from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.auth.profile import LANGUAGES
from portal.forms import choices

NEW_PASSWORD_HINT = "At least 10 characters."


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class CodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired(), Length(max=40)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )


class SetupCodeForm(FlaskForm):
    code = StringField(
        "6-digit code from your authenticator app",
        validators=[DataRequired(), Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(
        "Confirm password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])


class ChangeEmailForm(FlaskForm):
    email = EmailField("New email", validators=[DataRequired(), Length(max=254)])
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])


class DetailsForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)])
    language = SelectField("Preferred language", choices=choices(list(LANGUAGES.items())))


class PasswordConfirmForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
