//! Network policies from profiles, and the policies in force checked against observed flows.
