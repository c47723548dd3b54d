"""The reviews service's own unit test, run by the shop's CI pipeline (mesh/ci.yaml):
`python3 -m unittest discover -s apps -p 'test_*.py'` from examples/shop."""

from __future__ import annotations

import unittest

from reviews import stars


class StarsTest(unittest.TestCase):
    def test_versions_and_their_stars(self) -> None:
        self.assertIsNone(stars.rating("v1", 5))
        self.assertEqual(stars.rating("v2", 4), {"stars": 4, "color": "black"})
        self.assertEqual(stars.rating("v3", 9), {"stars": 5, "color": "red"})

    def test_the_version_comes_from_the_workload(self) -> None:
        self.assertEqual(stars.version_from({"AMI_WORKLOAD": "reviews-v2"}), "v2")
        self.assertEqual(stars.version_from({}), "v1")
        with self.assertRaises(ValueError):
            stars.version_from({"REVIEWS_VERSION": "v9"})


if __name__ == "__main__":
    unittest.main()
