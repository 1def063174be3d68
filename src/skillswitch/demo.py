"""The requests ``skillswitch demo`` routes: one or more per default skill, compound asks and
requests that no skill should take."""

from __future__ import annotations

__all__ = ["DEMO_REQUESTS"]

DEMO_REQUESTS: tuple[str, ...] = (
    "What is 18% of 2,450?",
    "Convert 26.2 miles to kilometres",
    "What time is it in Singapore right now?",
    "Write a Python function that checks whether a string is a palindrome",
    "Draft a friendly email inviting my team to a Friday lunch",
    "How do you say 'where is the library' in Spanish?",
    "Summarize the following article in two sentences: ...",
    "Who discovered penicillin?",
    "hey, how's it going?",
    "Compute the mean and standard deviation of 4, 8, 15, 16, 23, 42",
    "Give me five name ideas for a hiking club",
    "Why does my SQL query return duplicate rows after a join?",
    "How many days are there between 3 March and 18 June?",
    "Translate 'thank you' into Japanese and then convert 100 dollars to cents",
    "What's the boiling point of water in Fahrenheit, and why does altitude change it?",
    "Turn off the kitchen lights",
    "Transfer $300 from my checking account to savings",
    "Book me a table for four at 8pm tonight",
    "Proofread this paragraph: their going to the park tomorow",
    "Is 2,147,483,647 a prime number?",
)
