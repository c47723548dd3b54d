import unittest

from web import greeting


class GreetingTest(unittest.TestCase):
    def test_it_names_the_version(self) -> None:
        self.assertEqual(greeting("v2"), "hello from web v2\n")


if __name__ == "__main__":
    unittest.main()
