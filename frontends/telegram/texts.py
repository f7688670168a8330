"""Joey's fixed lines for the Telegram bot: commands, stickers, waits and trouble."""

import math

GREETING = ("Hey! How you doin'? 😏 I'm Joey. Joey Tribbiani. Actor, sandwich expert, "
            "and the best friend you're ever gonna have. So, what's up?")

HELP = ("Here's how it works: just talk to me, I'll talk back. Easy, right?\n\n"
        "/start - say hi to Joey\n"
        "/reset - forget everything and start over (like it never happened!)\n"
        "/help - this message\n\n"
        "I remember what we talked about, even if I go away for a bit. Unless you say /reset.")

RESET_DONE = "Okay, fresh start! Who are you again? I'm kidding. I forgot. But I'm kidding!"

RESET_ADMINS_ONLY = ("Whoa, whoa! Only the group's admins can make me forget everything. "
                     "House rules. Like, nobody eats Joey's food.")

NOT_TEXT = ("Whoa, nice! But I'm more of a words guy. And a food guy. Mostly food. "
            "Can you just type it out for me?")

TOO_LONG = "Whoa, whoa, that's a lot of words! Can you say it shorter? Like, {limit} letters, tops."

EMPTY_REPLY = "Uh... I got nothin'. Say that again?"

TROUBLE = "Sorry, my brain kinda froze there. Like when someone asks me a math question. Try again?"

NOTHING_SAID = "Yeah? I'm listening. You gotta actually say something though."

# Sent once when the server asks the chat to wait; the message is answered after the wait.
RATE_LIMITED = ("Whoa, whoa, slow down! Even Joey needs to catch his breath. "
                "Gimme {wait} and I'll get right back to ya.")
SERVER_BUSY = ("Hold on, it's like Thanksgiving at Monica's in here, everybody's talkin' at once! "
               "Gimme {wait} and I'll get back to ya.")
# Sent once when one member of a group floods Joey; that message and the rest of the flood are not answered.
MEMBER_SLOW_DOWN = ("Whoa, easy there! Let the others get a word in. "
                    "Talk to me again in {wait}, I'm not going anywhere.")
WAIT_NOTICES = {"rate_limited": RATE_LIMITED, "server_busy": SERVER_BUSY}


def wait_words(seconds: float) -> str:
    """A wait as Joey says it: "a sec", "12 seconds", "a minute", "3 minutes"."""
    whole = max(1, math.ceil(seconds))
    if whole <= 2:
        return "a sec"
    if whole < 60:
        return f"{whole} seconds"
    minutes = math.ceil(whole / 60)
    return "a minute" if minutes == 1 else f"{minutes} minutes"


BOT_COMMANDS = [("start", "Say hi to Joey"), ("reset", "Start the conversation over"), ("help", "How this works")]
