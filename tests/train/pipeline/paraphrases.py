"""Hand-written paraphrase pairs and unrelated sentences: the semantic-dedup ground truth."""

PARAPHRASE_PAIRS = [
    ("How do I reset my password?", "What are the steps to change my password if I forgot it?"),
    ("The capital of France is Paris.", "Paris is France's capital city."),
    ("Explain how photosynthesis works.", "Can you describe the process of photosynthesis?"),
    ("What is the boiling point of water at sea level?", "At sea level, at what temperature does water boil?"),
    ("Write a Python function that reverses a string.", "Give me Python code for a function to reverse a string."),
    ("Who wrote the novel Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
    ("How many legs does a spider have?", "What is the number of legs on a spider?"),
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    ("What causes the seasons on Earth?", "Why does Earth have seasons?"),
    ("Recommend a good book about the history of Rome.", "Can you suggest a book on ancient Roman history?"),
    ("How can I improve my sleep quality?", "What are some tips for sleeping better at night?"),
    ("Summarize the plot of Romeo and Juliet.", "Give me a short summary of the story of Romeo and Juliet."),
]

UNRELATED = [
    "List three prime numbers greater than fifty.",
    "What is the chemical symbol for gold?",
    "Describe the rules of chess castling.",
    "How do I bake sourdough bread at home?",
    "Which planet has the most moons?",
    "Convert 100 degrees Fahrenheit to Celsius.",
    "What are the main causes of inflation?",
    "Write a haiku about autumn leaves.",
    "How does a bicycle gear system work?",
    "Name the longest river in Africa.",
    "What is the difference between a virus and a bacterium?",
    "Plan a three-day trip to Kyoto.",
    "How do solar panels generate electricity?",
    "What year did the Berlin Wall fall?",
    "Explain recursion to a ten-year-old.",
    "How should I store fresh basil?",
    "What does a database index do?",
    "Give me a workout routine for beginners.",
    "Why is the sky blue during the day?",
    "Compose a short birthday message for a coworker.",
]
