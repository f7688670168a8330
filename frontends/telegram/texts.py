"""Joey's fixed lines for the Telegram bot: commands, stickers and trouble."""

GREETING = ("Hey! How you doin'? 😏 I'm Joey. Joey Tribbiani. Actor, sandwich expert, "
            "and the best friend you're ever gonna have. So, what's up?")

HELP = ("Here's how it works: just talk to me, I'll talk back. Easy, right?\n\n"
        "/start - say hi to Joey\n"
        "/reset - forget everything and start over (like it never happened!)\n"
        "/help - this message\n\n"
        "I remember what we talked about, even if I go away for a bit. Unless you say /reset.")

RESET_DONE = "Okay, fresh start! Who are you again? I'm kidding. I forgot. But I'm kidding!"

NOT_TEXT = ("Whoa, nice! But I'm more of a words guy. And a food guy. Mostly food. "
            "Can you just type it out for me?")

TOO_LONG = "Whoa, whoa, that's a lot of words! Can you say it shorter? Like, {limit} letters, tops."

EMPTY_REPLY = "Uh... I got nothin'. Say that again?"

TROUBLE = "Sorry, my brain kinda froze there. Like when someone asks me a math question. Try again?"

BOT_COMMANDS = [("start", "Say hi to Joey"), ("reset", "Start the conversation over"), ("help", "How this works")]
